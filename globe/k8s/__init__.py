"""Kubernetes side of GLOBE: the TrainJob launcher (Kubeflow Trainer SDK), the InferenceService
deploy (KServe), and offline manifest validation. Heavy clients are imported inside functions."""
