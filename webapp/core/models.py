"""Cross-cutting records: the append-only, hash-chained audit trail."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyQuerySet(models.QuerySet):
    """Refuses every bulk change: rows are only ever appended one at a time by ``save``."""

    def update(self, **kwargs):
        raise PermissionError("audit events are append-only: no update")

    def delete(self):
        raise PermissionError("audit events are append-only: no delete")

    def bulk_update(self, objs, fields, batch_size=None):
        raise PermissionError("audit events are append-only: no update")

    def bulk_create(self, objs, *args, **kwargs):
        raise PermissionError("audit events are appended one at a time (each joins the hash chain)")

    def update_or_create(self, *args, **kwargs):
        raise PermissionError("audit events are append-only: no update")


class AuditEvent(models.Model):
    """Who read or changed which patient data, from where and when.

    Append-only: ``save`` refuses updates, ``delete`` and the manager's bulk operations
    refuse, and on PostgreSQL a trigger refuses UPDATE and DELETE. Each row carries the hash
    of its contents chained to the row before it (``webapp.core.audit_chain``). The actor is
    kept by name; ``user`` is a plain reference without a database constraint that survives
    the user's deletion unchanged."""

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        DOWNLOAD = "download", "Downloaded"
        EXPORT = "export", "Exported"
        CREATE = "create", "Created"
        UPDATE = "update", "Changed"
        DELETE = "delete", "Deleted"
        JOB_START = "job_start", "Started job"
        LOGIN = "login", "Logged in"
        LOGIN_FAILED = "login_failed", "Failed login"
        DICOM_REFUSED = "dicom_refused", "DICOM refused"

    # set when the row is made (not auto_now_add, which would change it after hashing)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    patient_id_ref = models.BigIntegerField("patient id", null=True, blank=True, db_index=True)
    patient_mrn = models.CharField(max_length=64, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    path = models.CharField(max_length=500, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True, editable=False)
    row_hash = models.CharField(max_length=64, blank=True, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.object_type}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise PermissionError("audit events are append-only")
        from webapp.core.audit_chain import append

        append(self, lambda: super(AuditEvent, self).save(*args, **kwargs))

    def delete(self, *args, **kwargs):
        raise PermissionError("audit events are append-only")


class AuditChainHead(models.Model):
    """The single row (pk 1) that appenders lock, with the newest audit row's id and hash."""

    sequence = models.BigIntegerField(default=0)
    last_id = models.BigIntegerField(null=True, blank=True)
    last_hash = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"audit chain head: row {self.last_id}"


class ExternalIdentity(models.Model):
    """A user signed in through single sign-on: the provider's issuer and subject (``sub``).

    Users are matched by this pair, never by e-mail or user name, so a provider cannot sign
    anyone into a local account that merely shares a name or address with one of its users.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="external_identity_unique")
        ]

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject}"


class ApiToken(models.Model):
    """A machine's credential for the API (a navigation system), on behalf of one user.

    Only a SHA-256 of the token is stored; the token itself is shown once, at creation.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
