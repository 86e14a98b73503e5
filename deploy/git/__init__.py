"""Push-to-deploy: the platform as a git remote, and a signed webhook for code hosted elsewhere.

`GitRemote` serves http://HOST/git/<fn>.git over `git http-backend`; each repository's pre-receive hook
hands the push back to the platform (`PushReceiver`), which deploys the pushed commit through the
deploy service's `deploy_git`. `webhook` verifies GitHub-style push events and fetches the commit
they name, for the same deploy path.
"""

from pathlib import Path

from deploy.git.push import FunctionUrls, GitDeployer, PushReceiver
from deploy.git.push_options import PushOptionError, parse_push_options
from deploy.git.remote import PREFIX, GitAccess, GitRemote
from deploy.git.repos import Repositories, RepositoryError


def create_git_remote(root: Path, access: GitAccess, deployer: GitDeployer, *, deploy_branch: str = "main",
                      function_urls: FunctionUrls | None = None, max_push_bytes: int | None = None) -> GitRemote:
    """The remote as the platform wires it: repositories under `root`, deploys through `deployer`."""
    repos = Repositories(root, deploy_branch)
    pushes = PushReceiver(deployer, repos, function_urls)
    return GitRemote(repos, access, pushes, max_push_bytes=max_push_bytes)


__all__ = [
    "PREFIX", "GitAccess", "GitDeployer", "GitRemote", "PushOptionError", "PushReceiver", "Repositories",
    "RepositoryError", "create_git_remote", "parse_push_options",
]
