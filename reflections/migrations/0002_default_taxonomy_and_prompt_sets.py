"""Reasons, objections and prompt sets a sales team would recognise, editable in the admin."""

from django.db import migrations

REASONS = {
    "lost": [
        "Price",
        "Product fit",
        "Timing",
        "Budget",
        "Lost to competitor",
        "Relationship",
        "Champion left",
        "No decision / status quo",
    ],
    "won": [
        "Product fit",
        "Relationship",
        "Price",
        "Speed of delivery",
        "References",
        "Integration with their stack",
        "Support and service",
    ],
    "no_decision": [
        "Budget frozen",
        "Priorities changed",
        "No internal consensus",
        "Champion left",
        "Timing",
    ],
}

OBJECTIONS = [
    "Price too high",
    "Missing feature",
    "Integration effort",
    "Security or compliance review",
    "Contract terms",
    "Switching cost",
    "Happy with current tool",
    "No budget this year",
]

# (kind, label, help text, required). The lost set stays at five questions, pick-lists first,
# so that closing takes under a minute.
PROMPT_SETS = {
    "lost": (
        "Why we lost",
        [
            (
                "primary_reason",
                "What was the main reason we lost?",
                "Pick one, and say whether the customer told you or it is your own read.",
                True,
            ),
            (
                "competitor",
                "Who did they choose instead?",
                "Leave empty if they chose nobody.",
                False,
            ),
            ("contributing_reasons", "Anything else that played a part?", "", False),
            ("objections", "Which objections did you hear?", "", False),
            (
                "short_text",
                "What would you do differently?",
                "One or two sentences for the next rep who meets this customer.",
                True,
            ),
        ],
    ),
    "won": (
        "Why we won",
        [
            (
                "primary_reason",
                "What was the main reason we won?",
                "Pick one, and say whether the customer told you or it is your own read.",
                True,
            ),
            ("contributing_reasons", "Anything else that helped?", "", False),
            ("competitor", "Who else were they considering?", "", False),
            ("objections", "Which objections did you hear?", "", False),
            (
                "short_text",
                "How did you answer their biggest objection?",
                "Your answer feeds the objection playbook other reps read before a call.",
                False,
            ),
        ],
    ),
    "no_decision": (
        "Why it ended without a decision",
        [
            ("primary_reason", "Why did it end without a decision?", "", True),
            ("yes_no", "Is it worth trying again within a year?", "", True),
            (
                "scale",
                "How engaged was their champion?",
                "1 = not at all, 5 = fully behind us.",
                False,
            ),
            ("short_text", "What would you do differently?", "", False),
        ],
    ),
}


def create_defaults(apps, schema_editor):
    Reason = apps.get_model("reflections", "Reason")
    Objection = apps.get_model("reflections", "Objection")
    PromptSet = apps.get_model("reflections", "PromptSet")
    Question = apps.get_model("reflections", "Question")
    for outcome, labels in REASONS.items():
        for order, label in enumerate(labels, start=1):
            Reason.objects.get_or_create(
                outcome=outcome, label=label, defaults={"order": order * 10}
            )
    for order, label in enumerate(OBJECTIONS, start=1):
        Objection.objects.get_or_create(label=label, defaults={"order": order * 10})
    for outcome, (name, questions) in PROMPT_SETS.items():
        family = f"default-{outcome.replace('_', '-')}"
        if PromptSet.objects.filter(family=family).exists():
            continue
        prompt_set = PromptSet.objects.create(
            family=family, version=1, name=name, outcome=outcome, active=True
        )
        for order, (kind, label, help_text, required) in enumerate(questions, start=1):
            Question.objects.create(
                prompt_set=prompt_set,
                kind=kind,
                label=label,
                help_text=help_text,
                required=required,
                order=order * 10,
            )


class Migration(migrations.Migration):
    dependencies = [("reflections", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
