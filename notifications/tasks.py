"""Celery: `notifications.run` (beat, every notifications.pollSeconds) reads the outbox and sends
what is due; `notifications.daily_summary` (beat, every notifications.summary.checkSeconds)
writes the queues' daily summaries once the time of day has come."""

from __future__ import annotations

from celery import shared_task

from notifications import notifier, sender, summary


def run() -> dict:
    """One notifier pass and one sending pass (also what tests and make run call in-process)."""
    read = notifier.notify_until_idle()
    sent = sender.send_due()
    return {"read": read, "sent": sent}


@shared_task(name="notifications.run", ignore_result=True)
def run_task() -> dict:
    return run()


@shared_task(name="notifications.daily_summary", ignore_result=True)
def daily_summary_task() -> int:
    return summary.summarise()
