"""Finishes a cluster repository rendered by cookiecutter the way
`kubectl phd cluster create` does: formats infrastructure/ with tofu (or
terraform) when one is installed, then makes a git repository with one commit."""

import shutil
import subprocess
import sys

INITIALIZE_GIT = {{ 'True' if cookiecutter.initialize_git else 'False' }}
REPOSITORY = {{ cookiecutter.github_repository | tojson }}
MESSAGE = "Cluster repository phd-{{ cookiecutter.cluster_slug }}-cluster"


def git(*args):
    subprocess.run(["git", *args], check=True)


def main():
    tool = shutil.which("tofu") or shutil.which("terraform")
    if tool:
        subprocess.run([tool, "fmt", "-list=false"], cwd="infrastructure", check=True)
    else:
        print("neither tofu nor terraform is installed: infrastructure/ was not formatted", file=sys.stderr)
    if not INITIALIZE_GIT:
        return
    git("init", "--quiet", "--initial-branch=main")
    if REPOSITORY:
        git("remote", "add", "origin", REPOSITORY)
    git("add", "--all")
    identity = []
    for key, fallback in (("user.name", "kubectl-phd"), ("user.email", "kubectl-phd@localhost")):
        if subprocess.run(["git", "config", key], capture_output=True).returncode != 0:
            identity += ["-c", f"{key}={fallback}"]
    git(*identity, "commit", "--quiet", "--message", MESSAGE)


if __name__ == "__main__":
    main()
