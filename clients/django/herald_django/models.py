"""`Notification`: an unmanaged model over herald's `notifications` table.

herald's migrations own the table (`herald migrate`, or `herald serve` at start); Django never
creates, alters or drops it (`managed = False`). Inserting a row is all it takes: the table's
trigger wakes herald, which pushes the row to every open stream of its channel once the
inserting transaction commits.
"""

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.expressions import Expression

from . import validators


class _TableDefault(Expression):
    """The column's DEFAULT, written into the INSERT as the keyword itself."""

    def as_sql(self, compiler, connection):
        return "DEFAULT", []


class DatabaseTimeField(models.DateTimeField):
    """`created_at`, set by PostgreSQL (`now()`: when the writing transaction began).

    Not `auto_now_add`: that stamps the app server's clock, and herald's delivery-latency
    metric measures from `created_at`, so a skewed clock skews it. The INSERT says DEFAULT,
    and the value comes back with the row (RETURNING), on Django 4.2 as on 5.x.
    """

    db_returning = True

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", _TableDefault)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        # As a plain DateTimeField in migrations: the table is herald's, so they only need
        # to know the column exists.
        for key in ("default", "editable", "blank"):
            kwargs.pop(key, None)
        return name, "django.db.models.DateTimeField", args, kwargs

    def clean(self, value, model_instance):
        if isinstance(value, _TableDefault):
            return value  # not chosen yet: the database will
        return super().clean(value, model_instance)


class Notification(models.Model):
    """One notification. Create it (or call `herald_django.notify`) and herald delivers it.

    Validation mirrors the table's constraints, so `full_clean()`, model forms and the admin
    report bad values as form errors instead of a database error.
    """

    class Level(models.TextChoices):
        INFO = "info"
        SUCCESS = "success"
        WARNING = "warning"
        ERROR = "error"

    # `generated always as identity`: PostgreSQL assigns it and refuses any other value.
    id = models.BigAutoField(primary_key=True)
    channel = models.TextField(
        validators=[validators.validate_channel],
        help_text="user:<pk> for one user's inbox, broadcast for everyone, or a channel that "
        "tokens grant (order:17, project:5).",
    )
    # The table takes any text here, the empty string included; so does the model.
    title = models.TextField(blank=True, validators=[validators.validate_text])
    body = models.TextField(blank=True, default="", validators=[validators.validate_text])
    kind = models.TextField(default="notification", validators=[validators.validate_kind])
    level = models.TextField(choices=Level.choices, default=Level.INFO)
    data = models.JSONField(blank=True, default=dict, validators=[validators.validate_data])
    created_at = DatabaseTimeField()
    # Not declared: `txid` (herald's trigger stamps it) and the read state (herald's own
    # tables, changed through herald's API so that the user's other tabs hear of it).

    class Meta:
        managed = False
        db_table = "notifications"
        ordering = ["-id"]
        verbose_name = "herald notification"

    def __str__(self):
        return f"{self.channel}: {self.title}"

    def clean(self):
        if self._state.adding and self.pk is not None:
            raise ValidationError({"id": "PostgreSQL assigns the id; leave it unset."})


def _refuse_explicit_ids(sender, instance, raw, **kwargs):
    """Names the problem when a new row brings its own id (a fixture with `pk`, say).

    PostgreSQL would refuse it with `cannot insert a non-DEFAULT value into column "id"`.
    A row that exists is updated as usual: only inserts are refused.
    """
    if instance._state.adding and instance.pk is not None:
        exists = sender._base_manager.using(kwargs.get("using")).filter(pk=instance.pk).exists()
        if not exists:
            raise ValueError(
                f"herald_django.Notification: id {instance.pk!r} cannot be inserted; PostgreSQL "
                "assigns notification ids (generated always as identity). Leave `pk` out "
                "(in fixtures too)."
            )


models.signals.pre_save.connect(_refuse_explicit_ids, sender=Notification)
