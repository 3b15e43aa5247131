from django.core.management.base import BaseCommand, CommandError

from accounts.tokens import api_token_create


class Command(BaseCommand):
    help = "Create an API token for a machine client. The token is printed once, never again."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who uses it, e.g. 'Marketing dialler'")

    def handle(self, *args, name, **options):
        try:
            token, plain = api_token_create(name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created API token “{token.name}”. Copy it now; it is not shown again:")
        self.stdout.write(plain)
