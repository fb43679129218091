"""ssh: the SSH connections greenroom keeps open between runs (runbooks/core/keep_*)."""
