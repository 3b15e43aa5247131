"""Buyer surveys for each outcome, and the reasons worded from the buyer's side."""

from django.db import migrations

# Reason label -> how a buyer would say it (per outcome); labels not listed read as they are.
BUYER_WORDING = {
    "lost": {
        "Price": "The price",
        "Product fit": "It did not fit what we needed",
        "Timing": "The timing was wrong for us",
        "Budget": "We did not have the budget",
        "Lost to competitor": "Another offer suited us better",
        "Relationship": "How the relationship with the team went",
        "Champion left": "The person leading this on our side moved on",
        "No decision / status quo": "We decided to keep things as they are",
    },
    "won": {
        "Product fit": "It fits what we need",
        "Relationship": "The people we worked with",
        "Price": "The price",
        "Speed of delivery": "How quickly we could start",
        "References": "What other customers told us",
        "Integration with their stack": "It works with the tools we already use",
        "Support and service": "The support and service on offer",
    },
    "no_decision": {
        "Budget frozen": "Our budget was frozen",
        "Priorities changed": "Our priorities changed",
        "No internal consensus": "We could not agree internally",
        "Champion left": "The person leading this on our side moved on",
        "Timing": "The timing was wrong for us",
    },
}

# (kind, label, help text, required)
TEMPLATES = {
    "lost": (
        "After a decision not to buy",
        "We are sorry it did not work out this time, and would value your honest view.",
        [
            ("main_reason", "What was the main reason for your decision?", "", True),
            ("other_reasons", "What else mattered?", "Tick any that apply.", False),
            ("chosen_instead", "Who did you choose instead?", "", False),
            ("free_text", "Anything you would like us to know?", "", False),
        ],
    ),
    "won": (
        "After a decision to buy",
        "Thank you for choosing us. What tipped the balance helps us do more of it.",
        [
            ("main_reason", "What was the main reason you chose us?", "", True),
            ("other_reasons", "What else mattered?", "Tick any that apply.", False),
            ("free_text", "Anything we could have done better?", "", False),
        ],
    ),
    "no_decision": (
        "After no decision was made",
        "We understand plans change. Your view helps us know when to come back, if ever.",
        [
            ("main_reason", "What was the main reason no decision was made?", "", True),
            ("other_reasons", "What else mattered?", "Tick any that apply.", False),
            ("free_text", "Anything you would like us to know?", "", False),
        ],
    ),
}


def create(apps, schema_editor):
    Reason = apps.get_model("reflections", "Reason")
    SurveyTemplate = apps.get_model("surveys", "SurveyTemplate")
    SurveyQuestion = apps.get_model("surveys", "SurveyQuestion")
    for outcome, wording in BUYER_WORDING.items():
        for label, buyer_label in wording.items():
            Reason.objects.filter(outcome=outcome, label=label, buyer_label="").update(
                buyer_label=buyer_label
            )
    for outcome, (name, intro, questions) in TEMPLATES.items():
        if SurveyTemplate.objects.filter(outcome=outcome).exists():
            continue
        template = SurveyTemplate.objects.create(
            family=f"buyer-{outcome.replace('_', '-')}",
            version=1,
            name=name,
            outcome=outcome,
            intro=intro,
            active=True,
        )
        for order, (kind, label, help_text, required) in enumerate(questions, start=1):
            SurveyQuestion.objects.create(
                template=template,
                kind=kind,
                label=label,
                help_text=help_text,
                required=required,
                order=order * 10,
            )


def remove(apps, schema_editor):
    apps.get_model("surveys", "SurveyTemplate").objects.filter(
        family__startswith="buyer-", frozen_at__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0001_initial"),
        ("reflections", "0003_reason_buyer_label"),
    ]

    operations = [migrations.RunPython(create, remove)]
