"""
Asking buyers, sending the e-mail, saving their answers and their "don't ask me again".

Every refusal is decided in one place (`refusal`), read by the deal page to say why it cannot
ask and checked again by the request and by the send, so that a contact marked do-not-contact
or opted out between the two is never e-mailed.
"""

import datetime
import smtplib
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from accounts import access
from accounts.models import User
from customers.models import Contact
from opportunities.models import Competitor, Opportunity
from reflections.models import Origin, Reason, Reflection
from suppressions.decisions import active_on
from suppressions.models import Suppression, SuppressionReason
from surveys import signals, tokens
from surveys.models import (
    ASKED,
    SurveyAnswer,
    SurveyOptOut,
    SurveyQuestion,
    SurveyQuestionKind,
    SurveyRequest,
    SurveyStatus,
    SurveyTemplate,
)

TEXT_LIMIT = 2000


def _day(value: datetime.datetime | datetime.date) -> str:
    if isinstance(value, datetime.datetime):
        value = timezone.localtime(value).date()
    return date_format(value, "j F Y")


def template_for(outcome: str) -> SurveyTemplate | None:
    return (
        SurveyTemplate.objects.filter(outcome=outcome, active=True)
        .prefetch_related("questions")
        .first()
    )


def current_reflection(opportunity: Opportunity) -> Reflection | None:
    return Reflection.objects.filter(opportunity=opportunity, current=True).first()


def contact_refusal(contact: Contact, *, exclude: SurveyRequest | None = None) -> str | None:
    """Why `contact` may not be sent a survey now, in words for the deal page; None: they may."""
    name = contact.full_name
    if not contact.email:
        return f"{name} has no e-mail address, so there is nowhere to send a survey."
    dnc = Suppression.objects.filter(
        active_on(timezone.localdate()),
        Q(contact=contact) | Q(company_id=contact.company_id, contact__isnull=True),
        reason=SuppressionReason.DO_NOT_CONTACT,
    )
    if contact.do_not_contact or dnc.exists():
        return f"{name} is marked do-not-contact, so Debrief sends them no survey."
    opt_out = SurveyOptOut.objects.filter(email=contact.email).first()
    if opt_out is not None:
        return (
            f"{name} asked not to receive surveys (on {_day(opt_out.created_at)}), "
            "so Debrief does not ask them again."
        )
    days = settings.DEBRIEF_SURVEY_ASK_EVERY_DAYS
    recent = SurveyRequest.objects.filter(
        email=contact.email,
        status__in=ASKED,
        created_at__gte=timezone.now() - datetime.timedelta(days=days),
    )
    if exclude is not None:
        recent = recent.exclude(pk=exclude.pk)
    last = recent.order_by("-created_at").first()
    if last is not None:
        again = timezone.localtime(last.created_at).date() + datetime.timedelta(days=days)
        return (
            f"{name} was asked for feedback on {_day(last.created_at)}. Debrief asks a contact "
            f"at most once every {days} days, so the next survey can go on {_day(again)}."
        )
    return None


def refusal(opportunity: Opportunity, reflection: Reflection | None = None) -> str | None:
    """Why this deal's contact cannot be asked about its close now; None: they can."""
    if opportunity.is_open:
        return "A survey asks about a decision, so it can be sent once the deal is closed."
    reflection = reflection or current_reflection(opportunity)
    if reflection is None:
        return "This deal has no reflection to ask the buyer about."
    if reflection.origin == Origin.IMPORTED:
        return (
            "This close was imported from another CRM, so Debrief does not ask its buyer: "
            "they may not remember a decision made before Debrief knew of it."
        )
    asked = SurveyRequest.objects.filter(reflection=reflection).first()
    if asked is not None:
        return (
            f"The buyer was already asked about this close on {_day(asked.created_at)} "
            f"({asked.get_status_display().lower()})."
        )
    if opportunity.contact_id is None:
        return "This deal has no contact, so there is nobody to ask."
    if template_for(reflection.outcome) is None:
        return (
            f"No buyer survey is set up for {reflection.get_outcome_display().lower()} deals. "
            "An administrator can add one under Buyer surveys."
        )
    return contact_refusal(opportunity.contact)


@transaction.atomic
def survey_request(*, actor: User | None, opportunity: Opportunity) -> SurveyRequest:
    """
    Ask the deal's contact about its latest close: the request is saved now and the e-mail is
    sent by a task after commit. `actor` None is the template's rule on close. Raises
    ValidationError with the refusal's words, PermissionDenied for someone who may not act
    on the deal.
    """
    if actor is not None and not access.can_act_for(actor, opportunity.owner):
        raise PermissionDenied("Not yours to ask about.")
    # Requests for one contact are made one at a time, so that two at once cannot both pass
    # the "asked recently" rule.
    if opportunity.contact_id is not None:
        list(Contact.objects.select_for_update().filter(pk=opportunity.contact_id))
    reflection = current_reflection(opportunity)
    reason = refusal(opportunity, reflection)
    if reason:
        raise ValidationError(reason, code="refused")
    template = template_for(reflection.outcome)
    now = timezone.now()
    try:
        with transaction.atomic():
            survey = SurveyRequest.objects.create(
                reflection=reflection,
                opportunity=opportunity,
                contact=opportunity.contact,
                email=opportunity.contact.email,
                template=template,
                requested_by=actor,
                created_at=now,
                expires_at=now + datetime.timedelta(days=settings.DEBRIEF_SURVEY_LINK_DAYS),
            )
    except IntegrityError as exc:
        raise ValidationError(
            "The buyer was already asked about this close.", code="refused"
        ) from exc
    from surveys import tasks  # the task module imports this one

    transaction.on_commit(lambda: tasks.send_survey.delay(survey.pk), robust=True)
    return survey


def request_on_close(*, reflection_id: int) -> SurveyRequest | None:
    """The template's rule: ask automatically when it says so and nothing refuses."""
    reflection = (
        Reflection.objects.select_related("opportunity__owner", "opportunity__contact")
        .filter(pk=reflection_id, current=True)
        .first()
    )
    if reflection is None:
        return None
    template = template_for(reflection.outcome)
    if template is None or not template.send_on_close:
        return None
    try:
        return survey_request(actor=None, opportunity=reflection.opportunity)
    except ValidationError:
        return None


def link_for(survey: SurveyRequest) -> str:
    path = reverse("surveys:answer", args=[tokens.make(survey)])
    return settings.DEBRIEF_SITE_URL.rstrip("/") + path


def _message(survey: SurveyRequest) -> EmailMultiAlternatives:
    context = {
        "survey": survey,
        "company": survey.opportunity.company,
        "product": survey.opportunity.product,
        "link": link_for(survey),
        "expires_on": _day(survey.expires_at),
        "sender": survey.requested_by or survey.opportunity.owner,
    }
    message = EmailMultiAlternatives(
        subject=f"Two minutes on your decision about {survey.opportunity.product.name}?",
        body=render_to_string("surveys/email/ask.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[survey.email],
        reply_to=[context["sender"].email],
    )
    message.attach_alternative(render_to_string("surveys/email/ask.html", context), "text/html")
    return message


def is_transient(exc: BaseException) -> bool:
    """Whether sending may work if tried again later (a 4xx reply, a dropped connection)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError | OSError)


def survey_send(*, request_id: int) -> str:
    """
    Send one requested survey, once: the row is locked and only a request still "requested"
    is sent. Refusals are checked again (a contact marked do-not-contact or opted out since the
    request is withdrawn, not e-mailed). A permanent refusal by the mail server marks it
    bounced; a transient error propagates for the task to retry. Returns the new status.
    """
    with transaction.atomic():
        survey = (
            SurveyRequest.objects.select_for_update(of=("self",))
            .select_related(
                "contact", "opportunity__company", "opportunity__product", "requested_by"
            )
            .select_related("opportunity__owner")
            .filter(pk=request_id)
            .first()
        )
        if survey is None:
            return "missing"
        if survey.status != SurveyStatus.REQUESTED:
            return survey.status
        reason = contact_refusal(survey.contact, exclude=survey)
        if reason is None and survey.contact.email != survey.email:
            reason = "The contact's e-mail changed after the survey was requested."
        if reason:
            survey.status, survey.status_note = SurveyStatus.WITHDRAWN, reason[:300]
            survey.save(update_fields=["status", "status_note"])
            return survey.status
        now = timezone.now()
        survey.sent_at = now
        survey.expires_at = now + datetime.timedelta(days=settings.DEBRIEF_SURVEY_LINK_DAYS)
        try:
            sent = _message(survey).send()
        except Exception as exc:
            if is_transient(exc):
                raise
            survey.status = SurveyStatus.BOUNCED
            survey.status_note = f"The mail server refused it: {exc}"[:300]
            survey.sent_at = None
            survey.save(update_fields=["status", "status_note", "sent_at"])
            return survey.status
        if not sent:  # a site with no mail server set up sends nothing, and says so
            survey.status = SurveyStatus.FAILED
            survey.status_note = "E-mail is not set up on this site; ask an administrator."
            survey.save(update_fields=["status", "status_note"])
            return survey.status
        survey.status = SurveyStatus.SENT
        survey.save(update_fields=["status", "sent_at", "expires_at"])
        return survey.status


def survey_send_failed(*, request_id: int, note: str) -> None:
    """Give up on a request the task could not send after its retries."""
    SurveyRequest.objects.filter(pk=request_id, status=SurveyStatus.REQUESTED).update(
        status=SurveyStatus.FAILED, status_note=f"Could not be sent: {note}"[:300]
    )


def survey_mark_bounced(*, survey: SurveyRequest, note: str) -> bool:
    """Record a bounce reported later by the mail provider (admin action, provider webhook)."""
    return bool(
        SurveyRequest.objects.filter(pk=survey.pk, status=SurveyStatus.SENT).update(
            status=SurveyStatus.BOUNCED, status_note=note[:300]
        )
    )


@dataclass
class BuyerAnswer:
    """One answer as the public form produced it; "what else mattered" gives one per reason."""

    question: SurveyQuestion
    reason: Reason | None = None
    competitor: Competitor | None = None
    text: str = ""
    is_unknown: bool = False


def answer_refusal(survey: SurveyRequest | None) -> str | None:
    """Why a link may not be answered now; the words the public page shows."""
    if survey is None:
        return "invalid"
    if survey.status in (SurveyStatus.WITHDRAWN, SurveyStatus.FAILED):
        return "withdrawn"
    if survey.is_expired:
        return "expired"
    return None


def _check(survey: SurveyRequest, answers: list[BuyerAnswer]) -> list[BuyerAnswer]:
    questions = {q.pk: q for q in survey.template.questions.all()}
    errors: dict[str, list[str]] = {}
    given: dict[int, list[BuyerAnswer]] = {}
    outcome = survey.reflection.outcome
    kept = []
    for answer in answers:
        question = questions.get(answer.question.pk)
        if question is None:
            raise ValidationError("These questions have changed. Please reload the page.")
        name = f"q_{question.pk}"
        if answer.reason is not None and (
            answer.reason.outcome != outcome or not answer.reason.active
        ):
            errors.setdefault(name, []).append("Please pick one of the answers shown.")
        if answer.competitor is not None and not answer.competitor.active:
            errors.setdefault(name, []).append("Please pick one of the answers shown.")
        if question.kind == SurveyQuestionKind.FREE_TEXT:
            answer.text = answer.text.strip()
            if not answer.text:
                continue
            if len(answer.text) > TEXT_LIMIT:
                errors.setdefault(name, []).append(
                    f"Please keep it under {TEXT_LIMIT:,} characters."
                )
        given.setdefault(question.pk, []).append(answer)
        kept.append(answer)
    for question in questions.values():
        name = f"q_{question.pk}"
        mine = given.get(question.pk, [])
        if question.required and not mine and name not in errors:
            errors.setdefault(name, []).append("Please answer this one.")
        if question.kind != SurveyQuestionKind.OTHER_REASONS and len(mine) > 1:
            errors.setdefault(name, []).append("Please give one answer here.")
    if errors:
        raise ValidationError(errors)
    return kept


def survey_answer(
    *, survey: SurveyRequest, answers: list[BuyerAnswer], revision: int
) -> SurveyRequest:
    """
    Save (or replace) the buyer's answers, once per form: `revision` is the number the form was
    drawn with, so a form submitted twice, or an old tab, saves nothing. Raises ValidationError
    (code "stale", "closed", or per question).
    """
    with transaction.atomic():
        locked = (
            SurveyRequest.objects.select_for_update(of=("self",))
            .select_related("template", "reflection")
            .get(pk=survey.pk)
        )
        if answer_refusal(locked):
            raise ValidationError("This survey is closed.", code="closed")
        if locked.revision != revision:
            raise ValidationError("These answers were already saved.", code="stale")
        kept = _check(locked, answers)
        SurveyAnswer.objects.filter(request=locked).delete()
        SurveyAnswer.objects.bulk_create(
            SurveyAnswer(
                request=locked,
                question=a.question,
                reason=a.reason,
                competitor=a.competitor,
                text=a.text,
                is_unknown=a.is_unknown,
            )
            for a in kept
        )
        locked.status = SurveyStatus.ANSWERED
        locked.answered_at = timezone.now()
        locked.revision += 1
        locked.save(update_fields=["status", "answered_at", "revision"])
        SurveyTemplate.objects.filter(pk=locked.template_id, frozen_at__isnull=True).update(
            frozen_at=locked.answered_at
        )
        signals.survey_answered.send(sender=SurveyRequest, survey=locked)
    return locked


@transaction.atomic
def survey_opt_out(*, survey: SurveyRequest) -> SurveyOptOut:
    """The buyer's "don't ask me again": recorded by e-mail, whichever company they are at."""
    opt_out, _ = SurveyOptOut.objects.get_or_create(
        email=survey.email, defaults={"request": survey}
    )
    # Requests not yet sent to this address are withdrawn rather than sent.
    SurveyRequest.objects.filter(email=survey.email, status=SurveyStatus.REQUESTED).update(
        status=SurveyStatus.WITHDRAWN, status_note="The contact asked not to receive surveys."
    )
    return opt_out


@transaction.atomic
def survey_template_revise(*, template: SurveyTemplate) -> SurveyTemplate:
    """A new, active, unfrozen version of `template` with copies of its questions."""
    latest = SurveyTemplate.objects.filter(family=template.family).order_by("-version").first()
    questions = list(template.questions.all())
    SurveyTemplate.objects.filter(outcome=template.outcome, active=True).update(active=False)
    new = SurveyTemplate.objects.create(
        family=template.family,
        version=latest.version + 1,
        name=template.name,
        outcome=template.outcome,
        intro=template.intro,
        send_on_close=template.send_on_close,
        active=True,
    )
    SurveyQuestion.objects.bulk_create(
        SurveyQuestion(
            template=new,
            kind=q.kind,
            label=q.label,
            help_text=q.help_text,
            required=q.required,
            order=q.order,
        )
        for q in questions
    )
    return new
