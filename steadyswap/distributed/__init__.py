"""Scale-out: batches of jobs split into segments and run on a cluster (Dask distributed today).

The job model (``jobs``, ``manifest``, ``batch``, ``tasks``) only talks to the small ``Executor``
interface; ``dask_executor`` implements it and is the only module that imports Dask.
"""

from steadyswap.distributed.batch import Batch, BatchProgress, BatchResult, BatchSettings, JobReport
from steadyswap.distributed.executor import Executor
from steadyswap.distributed.jobs import Job, jobs_from_folder, load_job_file

__all__ = [
    "Batch",
    "BatchProgress",
    "BatchResult",
    "BatchSettings",
    "Executor",
    "Job",
    "JobReport",
    "jobs_from_folder",
    "load_job_file",
]
