"""registry.up's guard for its storage's ownership, run by a real shell on a temporary tree
(the package chowns only the top directory; a tree restored as root refuses pushes)."""

from __future__ import annotations

import os
import pwd
import subprocess

from runbooks.registry.converge import not_owned_by

ME = pwd.getpwuid(os.getuid()).pw_name
# a user with a group of its own name, as the package's docker-registry has
OTHER = "daemon" if ME != "daemon" else "root"


def guard(path, user) -> bool:
    return subprocess.run(["sh", "-c", not_owned_by(str(path), user)]).returncode == 0


def tree(tmp_path):
    top = tmp_path / "docker-registry"
    (top / "docker/registry/v2/repositories/lab/faults").mkdir(parents=True)
    (top / "docker/registry/v2/blobs/sha256/ab").mkdir(parents=True)
    (top / "docker/registry/v2/blobs/sha256/ab/data").write_text("x")
    return top


def test_a_tree_all_owned_by_the_user_needs_nothing(tmp_path):
    assert not guard(tree(tmp_path), ME)


def test_another_user_owns_the_tree(tmp_path):
    assert guard(tree(tmp_path), OTHER)


def test_no_such_user_or_path_needs_nothing(tmp_path):
    assert not guard(tree(tmp_path), "no-such-user-greenroom")
    assert not guard(tmp_path / "missing", ME)


def test_a_path_with_a_space_is_quoted(tmp_path):
    top = tmp_path / "with space"
    top.mkdir()
    assert not guard(top, ME)
    assert guard(top, OTHER)
