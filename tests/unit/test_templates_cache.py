"""Compiled templates kept per user (runbooks/core/templates.py): a new process renders a
template it rendered before without compiling it again; a changed template is compiled again
(never the old output); a cache directory that cannot be made or written costs only the
compile."""

from __future__ import annotations

import jinja2
import pytest

from runbooks.core import templates


@pytest.fixture
def site(tmp_path, monkeypatch):
    """Templates in a scratch files/ directory, the cache in a scratch $XDG_CACHE_HOME, and
    every jinja2 compile counted; `new_process()` forgets the environment, as a new `inv`."""
    files = tmp_path / "files"
    (files / "demo").mkdir(parents=True)
    (files / "demo" / "motd.j2").write_text("hello {{ who }}\n")
    monkeypatch.setattr(templates, "FILES", files)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    compiled: list[str] = []
    compile_ = jinja2.Environment.compile

    def counted(self, source, name=None, filename=None, raw=False, defer_init=False):  # noqa: ANN001, ANN202, E501
        compiled.append(name)
        return compile_(self, source, name, filename, raw, defer_init)

    monkeypatch.setattr(jinja2.Environment, "compile", counted)
    templates._environment.cache_clear()
    yield files, compiled
    templates._environment.cache_clear()


def new_process() -> None:
    templates._environment.cache_clear()


def test_a_template_is_compiled_once_per_user_not_once_per_process(site):
    files, compiled = site
    assert templates.render("demo/motd.j2", who="rp0") == "hello rp0\n"
    assert compiled == ["demo/motd.j2"]
    new_process()
    assert templates.render("demo/motd.j2", who="rp1") == "hello rp1\n"
    assert compiled == ["demo/motd.j2"]  # the kept code, not compiled again
    kept = list(templates.cache_dir().iterdir())
    assert len(kept) == 1 and "rp0" not in kept[0].read_bytes().decode("latin-1")
    assert templates.cache_dir().stat().st_mode & 0o777 == 0o700


def test_a_changed_template_is_compiled_again(site):
    files, compiled = site
    templates.render("demo/motd.j2", who="rp0")
    (files / "demo" / "motd.j2").write_text("bye {{ who }}\n")
    new_process()
    assert templates.render("demo/motd.j2", who="rp0") == "bye rp0\n"
    assert compiled == ["demo/motd.j2"] * 2


def test_no_cache_directory_costs_only_the_compile(site, tmp_path, monkeypatch):
    files, compiled = site
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-dir"))
    new_process()
    assert templates.render("demo/motd.j2", who="rp0") == "hello rp0\n"
    new_process()
    assert templates.render("demo/motd.j2", who="rp0") == "hello rp0\n"
    assert len(compiled) == 2


@pytest.mark.parametrize("make", [
    pytest.param(lambda d: d.chmod(0o777), id="writable-by-others"),
    pytest.param(lambda d: d.chmod(0o770), id="writable-by-the-group"),
    pytest.param(lambda d: (d.rmdir(), d.symlink_to(d.parent / "elsewhere")), id="a-link"),
])
def test_a_cache_others_could_write_is_not_used(site, make):
    """Compiled code is loaded from the cache: one that another user could fill is never
    read or written (the template is compiled every time instead)."""
    files, compiled = site
    directory = templates.cache_dir()
    directory.mkdir(parents=True)
    (directory.parent / "elsewhere").mkdir(mode=0o700)
    make(directory)
    for who in ("rp0", "rp1"):
        new_process()
        assert templates.render("demo/motd.j2", who=who) == f"hello {who}\n"
    assert compiled == ["demo/motd.j2"] * 2
    assert not list((directory.parent / "elsewhere").iterdir())
