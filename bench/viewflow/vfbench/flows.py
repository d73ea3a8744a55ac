"""The comparison flow: Start (from code) → a human View → End, the View gated by a Django
permission (viewflow's usual human task), locked with SELECT … FOR UPDATE on the process row
(viewflow's lock for PostgreSQL)."""

from viewflow import this
from viewflow.workflow import flow, lock
from viewflow.workflow.flow.views import UpdateProcessView


class ReviewFlow(flow.Flow):
    lock_impl = lock.select_for_update_lock

    start = flow.StartHandle(this.start_review).Next(this.review)
    review = flow.View(UpdateProcessView.as_view(fields=[])).Permission(auto_create=True).Next(this.end)
    end = flow.End()

    def start_review(self, activation, **kwargs):
        activation.process.data = {"workflow_id": "hot", "run_id": kwargs["run_id"], "task_name": "review"}
        return activation.process
