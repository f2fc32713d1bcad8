"""The KFP side of GLOBE: what each step does (`steps`), the shared names (`settings`), and the
library behind `globe pipeline compile | run-local | submit` (`build`, `local`, `submit`)."""
