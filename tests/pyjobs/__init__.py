"""Functions the python task tests call (PYTHON_TASK_MODULES=tests.pyjobs in those tests).

A stand-in for a team's own package (``acme_jobs``) installed beside the
product on every host: see docs/python-tasks.md.
"""
