"""Drive headless Debian chromium over the DevTools protocol on a pipe (`--remote-debugging-pipe`).

The smallest robust option for a page that must be clicked, given a file and read back: no
package, no browser download, no debugging port on the machine. Chromium reads NUL-terminated
JSON commands on fd 3 and writes replies and events on fd 4; one page target is attached in
"flat" mode so its commands carry a `sessionId`.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"


def short_tmp_base() -> str:
    """Chromium puts its singleton socket under $TMPDIR and a Unix socket path has at most 107
    bytes, so its TMPDIR must be short (see tests/test_eval_tiny.py)."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        if len(base) <= 40 and os.path.isdir(base) and os.access(base, os.W_OK):
            return base
    return tempfile.gettempdir()


class Browser:
    """One headless chromium with one page; `with Browser(profile) as b: b.goto(url)`."""

    def __init__(self, profile: Path, size: tuple[int, int] = (1200, 1800)):
        self.profile, self.size, self._id = profile, size, 0
        self._buffer = b""

    def __enter__(self) -> "Browser":
        self._tmp = tempfile.TemporaryDirectory(dir=short_tmp_base(), prefix="cdp-")
        to_child, self._out = os.pipe()  # chromium reads commands on fd 3
        self._in, from_child = os.pipe()  # and writes replies on fd 4
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--remote-debugging-pipe",
               f"--user-data-dir={self.profile}", "--hide-scrollbars", "--force-device-scale-factor=1",
               f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]  # fmt: skip

        def fds() -> None:  # dup2's copies are inheritable; every other fd of ours is not (PEP 446)
            import fcntl

            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_child, from_child)]  # neither is 3 or 4 now
            for target, fd in zip((3, 4), high):
                os.dup2(fd, target)

        self.proc = subprocess.Popen(cmd, preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": self._tmp.name})  # fmt: skip
        os.close(to_child)
        os.close(from_child)
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        for domain in ("Page", "Runtime"):
            self.call(f"{domain}.enable", session=True)
        self.events: list[dict] = []
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for fd in (self._in, self._out):
            os.close(fd)
        self._tmp.cleanup()

    def call(self, method: str, session: bool = False, timeout_s: float = 60, **params: Any) -> dict:
        """Send one command and wait for its reply (events that arrive meanwhile are kept)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply and hasattr(self, "events"):
                self.events.append(reply)
        raise TimeoutError(f"{method}: no reply within {timeout_s} s")

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("chromium sent nothing")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(line)

    def goto(self, url: str) -> None:
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("document.readyState === 'complete' && !!document.body")

    def js(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 90) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(f"not true within {timeout_s} s: {expression}")

    def set_file(self, selector: str, path: Path) -> None:
        """Choose `path` in an <input type=file> as a person would (input and change events fire)."""
        obj = self.call("Runtime.evaluate", session=True, expression=f"document.querySelector({json.dumps(selector)})")
        self.call("DOM.setFileInputFiles", session=True, files=[str(path)], objectId=obj["result"]["objectId"])

    def key(self, key: str, code: str, keycode: int) -> None:
        """Press and release one key (Tab: 'Tab', 'Tab', 9; Enter: 'Enter', 'Enter', 13)."""
        extra = {"text": "\r"} if key == "Enter" else {}
        self.call("Input.dispatchKeyEvent", session=True, type="keyDown", key=key, code=code, windowsVirtualKeyCode=keycode, **extra)
        self.call("Input.dispatchKeyEvent", session=True, type="keyUp", key=key, code=code, windowsVirtualKeyCode=keycode)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
