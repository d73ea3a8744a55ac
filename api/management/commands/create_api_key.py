from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from api.models import ServiceApiKey
from directory.roles import ROLES, role_group_name


class Command(BaseCommand):
    help = "Create a hashed API key for a service client and print the key once."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the client's name (also its username)")
        parser.add_argument("--role", default="service", choices=ROLES, help="platform role of the client")

    @transaction.atomic
    def handle(self, *args, name, role, **options):
        from django.contrib.auth.models import Group

        if not name or len(name) > 150:
            raise CommandError("name must be 1–150 characters")
        user, created = get_user_model().objects.get_or_create(username=name)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get_or_create(name=role_group_name(role))[0])
        _, key = ServiceApiKey.objects.create_key(name=name, user=user)
        self.stdout.write(key)
        self.stderr.write(f"API key for {name} (role {role}); it is shown only now. Use: Authorization: Api-Key <key>")
