"""`manage.py demo_data`: a small, believable data set for `make run` and the compose stack.

Idempotent: groups, users, the lifecycle and queues are only created when
missing (an existing one is left exactly as it is), and the items are created
only when no item with a "demo-" workflow id exists yet. Every item is created
and moved through `workitems.services`, so the audit trail and the outbox
hold the same rows a real client would have produced.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from config.context import acting
from directory.roles import ADMIN, ROLES, SERVICE, SUPERVISOR, WORKER, role_group_name
from workitems import services
from workitems.models import Lifecycle, Queue, State, WorkItem

PASSWORD = "demo"  # noqa: S105 - a published demo login, documented in the README
WORKFLOW_PREFIX = "demo-"
TEAMS = ("team-a", "team-b")

# username → (platform roles, team groups, superuser)
USERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "alice": ((WORKER,), ("team-a",), False),
    "carol": ((WORKER,), ("team-a",), False),
    "bob": ((WORKER,), ("team-b",), False),
    "sam": ((SUPERVISOR,), (), False),
    "svc": ((SERVICE,), (), False),
    "admin": ((ADMIN,), (), True),
}

KYC_LIFECYCLE = {
    "name": "kyc",
    "description": "Know-your-customer review: documents are collected, then verified; the result names a decision.",
    "start_step": Lifecycle.START_REQUIRED,
    "sub_statuses": {
        "initial": "collecting",
        "moves": {
            "collecting": ["verifying"],
            "verifying": ["collecting", "awaiting-customer"],
            "awaiting-customer": ["verifying"],
        },
    },
    "result_schema": {
        "type": "object",
        "required": ["decision"],
        "properties": {
            "decision": {"enum": ["approve", "reject"]},
            "risk_score": {"type": "integer", "minimum": 0, "maximum": 100},
            "notes": {"type": "string"},
        },
        "additionalProperties": False,
    },
}


class Command(BaseCommand):
    help = "Create demo users, groups, queues and work items in every state (idempotent)."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            groups = self._groups()
            users, created_users = self._users(groups)
            queues = self._queues(groups)
        self._print_logins(users, created_users)

        if WorkItem.objects.filter(workflow_id__startswith=WORKFLOW_PREFIX).exists():
            self.stdout.write("Demo work items already present: nothing to create.")
            return
        # One transaction: a failure half-way leaves no "demo-" item behind, so a rerun starts over.
        with transaction.atomic(), acting(channel="system"):
            items = DemoItems(users, queues).create()
        counts = {state: sum(1 for i in items if i.state == state) for state in State.values}
        summary = ", ".join(f"{state} {n}" for state, n in counts.items() if n)
        escalated = sum(1 for i in items if i.escalation_level)
        self.stdout.write(
            self.style.SUCCESS(f"Created {len(items)} demo work items: {summary}; escalated {escalated}.")
        )

    # --- directory -----------------------------------------------------------------------

    def _groups(self) -> dict[str, Group]:
        names = [role_group_name(role) for role in ROLES] + list(TEAMS)
        return {name: Group.objects.get_or_create(name=name)[0] for name in names}

    def _users(self, groups: dict[str, Group]):
        User = get_user_model()
        users, created = {}, []
        for username, (roles, teams, superuser) in USERS.items():
            user = User.objects.filter(username=username).first()
            if user is None:
                make = User.objects.create_superuser if superuser else User.objects.create_user
                user = make(username=username, email=f"{username}@example.com", password=PASSWORD)
                user.groups.add(*[groups[role_group_name(r)] for r in roles], *[groups[t] for t in teams])
                created.append(username)
            users[username] = user
        return users, created

    def _print_logins(self, users: dict, created: list[str]) -> None:
        if created:
            self.stdout.write(f'Demo logins (password "{PASSWORD}" for each):')
            for username in created:
                roles, teams, superuser = USERS[username]
                what = ", ".join([*roles, *teams] + (["superuser"] if superuser else []))
                self.stdout.write(f"  {username:<6} {what}")
        else:
            self.stdout.write("Demo users already present (passwords left as they are).")

    # --- queues -----------------------------------------------------------------------------

    def _queues(self, groups: dict[str, Group]) -> dict[str, Queue]:
        supervisors = groups[role_group_name(SUPERVISOR)]
        escalations = self._queue(
            "escalations",
            groups=[supervisors],
            description="Items that ran past their SLA or were escalated by hand; worked by supervisors.",
            sla=timedelta(hours=1),
        )
        claims = self._queue(
            "claims",
            groups=[groups["team-a"]],
            description="Insurance claims to assess. Pull: team A claims from the queue.",
            strategy="offer",
            sla=timedelta(hours=4),
            capacity_per_user=5,
            escalation_queue=escalations,
            sensitive_keys=["policy_holder_iban"],
        )
        lifecycle = Lifecycle.objects.filter(name=KYC_LIFECYCLE["name"]).first()
        if lifecycle is None:
            lifecycle = Lifecycle(**KYC_LIFECYCLE)
            lifecycle.full_clean()
            lifecycle.save()
        kyc = self._queue(
            "kyc-review",
            groups=[groups["team-a"], groups["team-b"]],
            description="Customer identity checks, with sub-statuses and a result schema (lifecycle 'kyc').",
            strategy="offer",
            sla=timedelta(days=1),
            lifecycle=lifecycle,
        )
        return {"escalations": escalations, "claims": claims, "kyc-review": kyc}

    def _queue(self, name: str, *, groups: list[Group], **fields) -> Queue:
        queue = Queue.objects.filter(name=name).first()
        if queue is None:
            queue = Queue.objects.create(name=name, **fields)
            queue.candidate_groups.set(groups)
        return queue


class DemoItems:
    """The demo work items, each created and moved through the service layer."""

    def __init__(self, users: dict, queues: dict[str, Queue]):
        self.u = users
        self.q = queues
        self.n = 0
        self.items: list[WorkItem] = []

    def create(self) -> list[WorkItem]:
        self._claims()
        self._kyc()
        # Re-read: an item may have moved on after the instance first kept for it.
        return list(WorkItem.objects.filter(pk__in=[i.pk for i in self.items]).order_by("pk"))

    def new(self, queue: str, task: str, title: str, **body) -> WorkItem:
        self.n += 1
        data = {
            "workflow_id": f"{WORKFLOW_PREFIX}{queue}-{self.n:03d}",
            "run_id": "run-1",
            "task_name": task,
            "title": title,
            "queue": queue,
            **body,
        }
        item = services.work_item_create(actor=self.u["svc"], data=data)
        self.items.append(item)
        return item

    def _claims(self) -> None:
        alice, carol, sam, svc = self.u["alice"], self.u["carol"], self.u["sam"], self.u["svc"]
        s = services

        def claim(title: str, **body) -> WorkItem:
            ctx = {"claim_no": f"CLM-{1000 + self.n + 1}", "amount_eur": 250 * (self.n + 1), **body.pop("ctx", {})}
            return self.new("claims", "assess-claim", title, context_data=ctx, **body)

        # OFFERED: waiting in the queue for team A, one of them urgent.
        claim("Windscreen damage, Golf VII", priority=80)
        claim("Water damage in basement", priority=50, ctx={"policy_holder_iban": "DE89370400440532013000"})
        claim("Stolen bicycle", priority=30)
        # OFFERED again after a release.
        i = claim("Storm damage to roof")
        s.work_item_claim(item_id=i.pk, actor=carol)
        s.work_item_release(item_id=i.pk, actor=carol)

        # ASSIGNED: claimed (pull), pushed directly at creation, and delegated.
        i = claim("Rear-end collision, two vehicles")
        s.work_item_claim(item_id=i.pk, actor=alice)
        claim("Broken phone screen", assignee="carol")
        i = claim("Lost luggage, flight LH 123")
        s.work_item_claim(item_id=i.pk, actor=alice)
        s.work_item_start(item_id=i.pk, actor=alice)
        s.work_item_delegate(item_id=i.pk, actor=alice, user=carol)

        # IN_PROGRESS, one of them suspended and resumed on the way.
        i = claim("Kitchen fire")
        s.work_item_claim(item_id=i.pk, actor=carol)
        s.work_item_start(item_id=i.pk, actor=carol)
        i = claim("Hail damage, car park")
        s.work_item_claim(item_id=i.pk, actor=alice)
        s.work_item_suspend(item_id=i.pk, actor=sam, reason="waiting for the assessor's photos")
        s.work_item_resume(item_id=i.pk, actor=sam)
        s.work_item_start(item_id=i.pk, actor=alice)

        # SUSPENDED: on hold while in progress, and while offered.
        i = claim("Burglary, missing jewellery")
        s.work_item_claim(item_id=i.pk, actor=alice)
        s.work_item_start(item_id=i.pk, actor=alice)
        s.work_item_suspend(item_id=i.pk, actor=sam, reason="police report requested")
        i = claim("Disputed liability")
        s.work_item_suspend(item_id=i.pk, actor=sam, reason="legal review")

        # COMPLETED, FAILED, CANCELLED.
        i = claim("Cracked tiles, bathroom")
        s.work_item_claim(item_id=i.pk, actor=carol)
        s.work_item_start(item_id=i.pk, actor=carol)
        s.work_item_complete(item_id=i.pk, actor=carol, result={"approved": True, "payout_eur": 420})
        i = claim("Scratched bumper")
        s.work_item_claim(item_id=i.pk, actor=alice)
        s.work_item_start(item_id=i.pk, actor=alice)
        s.work_item_complete(item_id=i.pk, actor=alice, result={"approved": False, "reason": "below deductible"})
        i = claim("Flooded garage")
        s.work_item_claim(item_id=i.pk, actor=alice)
        s.work_item_start(item_id=i.pk, actor=alice)
        s.work_item_fail(item_id=i.pk, actor=alice, reason="policy lapsed before the date of loss")
        i = claim("Duplicate of CLM-1002")
        s.work_item_cancel(item_id=i.pk, actor=svc, reason="duplicate submission")
        i = claim("Withdrawn by customer")
        s.work_item_cancel(item_id=i.pk, actor=sam, reason="customer withdrew the claim")

        # Escalated: by the system (SLA) while offered, which moves it to the escalations queue;
        # by a supervisor while in progress, which keeps it with its assignee; and an overdue one
        # that the SLA scan will find.
        i = claim("Total loss, delivery van", priority=90)
        s.work_item_escalate(item_id=i.pk, actor=None, reason="SLA breached: not claimed within 4h")
        i = claim("Injury claim, cyclist", priority=70)
        s.work_item_claim(item_id=i.pk, actor=carol)
        s.work_item_start(item_id=i.pk, actor=carol)
        s.work_item_escalate(item_id=i.pk, actor=sam, reason="customer complaint")
        s.work_item_escalate(item_id=i.pk, actor=sam, reason="second complaint")
        overdue = (timezone.now() - timedelta(hours=1)).isoformat()
        claim("Glass breakage, shop window", due_at=overdue)

    def _kyc(self) -> None:
        bob, alice = self.u["bob"], self.u["alice"]
        s = services

        def kyc(title: str, **body) -> WorkItem:
            return self.new("kyc-review", "verify-identity", title, context_data={"customer": title}, **body)

        kyc("ACME Trading GmbH")
        i = kyc("Jane Doe")
        s.work_item_claim(item_id=i.pk, actor=bob)
        s.work_item_start(item_id=i.pk, actor=bob)  # sub-status "collecting"
        s.work_item_set_sub_status(item_id=i.pk, actor=bob, sub_status="verifying")
        i = kyc("John Roe")
        s.work_item_claim(item_id=i.pk, actor=bob)
        s.work_item_start(item_id=i.pk, actor=bob)
        s.work_item_set_sub_status(item_id=i.pk, actor=bob, sub_status="verifying")
        s.work_item_set_sub_status(item_id=i.pk, actor=bob, sub_status="awaiting-customer")
        i = kyc("Erika Mustermann")
        s.work_item_claim(item_id=i.pk, actor=bob)
        s.work_item_start(item_id=i.pk, actor=bob)
        s.work_item_set_sub_status(item_id=i.pk, actor=bob, sub_status="verifying")
        s.work_item_complete(item_id=i.pk, actor=bob, result={"decision": "approve", "risk_score": 12})

        # Four eyes: two checks of one run share an SoD key, so whoever did the first
        # cannot take the second. Bob did the first; the second waits for someone else.
        self.n += 1
        four_eyes = {"workflow_id": f"{WORKFLOW_PREFIX}kyc-review-{self.n:03d}", "run_id": "run-1", "sod_key": "kyc"}
        first = services.work_item_create(
            actor=self.u["svc"],
            data={**four_eyes, "task_name": "first-check", "title": "Globex Corp: first check", "queue": "kyc-review"},
        )
        second = services.work_item_create(
            actor=self.u["svc"],
            data={
                **four_eyes,
                "task_name": "second-check",
                "title": "Globex Corp: second check",
                "queue": "kyc-review",
            },
        )
        self.items += [first, second]
        s.work_item_claim(item_id=first.pk, actor=bob)
        s.work_item_start(item_id=first.pk, actor=bob)
        s.work_item_complete(item_id=first.pk, actor=bob, result={"decision": "approve", "notes": "documents match"})
        # Alice may take the second check; leave it ASSIGNED to her.
        s.work_item_claim(item_id=second.pk, actor=alice)
