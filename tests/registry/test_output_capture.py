"""The registry tasks print to whatever sys.stdout is when they run (not the one of import
time), so contextlib.redirect_stdout, pytest's capsys and Invoke's own capture all see it."""

from __future__ import annotations

import contextlib
import io

from runbooks.registry.run import Options, load_images, noop_run

from .test_load_images import GOOD, write_list


def test_load_images_and_its_noop_print_to_the_stdout_of_the_call(tmp_path, source, target,
                                                                   creds_env):
    opts = Options(images=str(write_list(tmp_path, source.host, GOOD)), to=target.host,
                   backoff=0.01)
    first = io.StringIO()
    with contextlib.redirect_stdout(first):
        summary = load_images(opts)
    assert (summary.copied, summary.failed) == (4, [])
    assert "kube/apiserver:v1 -> kube/apiserver:v1" in first.getvalue()

    second = io.StringIO()
    with contextlib.redirect_stdout(second):
        again = noop_run(opts)
    assert again is not None and again.skipped == 4
    assert "kube/apiserver:v1" in second.getvalue()
