"""Deploy targets: `local` (replica supervisor with a pre-imported zygote); knative and lambda come next.

`service.py` is the deploy service (build, record, collect) that the control API and the git remote share.
"""
