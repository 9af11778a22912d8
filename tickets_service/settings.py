"""The settings blueprint: what each ISP sets for itself (admins only). An ISP that never set
anything has the defaults; later features add their settings here."""

from sqlalchemy import select

from .extensions import db
from .models import IspSettings
from .openapi import Blueprint
from .schemas import SettingsOut, settings_in, ticket_scope_args
from .scope import current_scope, without_scope
from .tokens import token_required

bp = Blueprint("settings", __name__, description="The ISP's own settings (admins).")


def settings_of(isp_id: int) -> IspSettings:
    """The ISP's settings (the defaults, unsaved, if it never set any)."""
    found = db.session.scalar(select(IspSettings).where(IspSettings.isp_id == isp_id))
    if found is None:
        column = IspSettings.__table__.c
        found = IspSettings(
            isp_id=isp_id,
            **{
                name: column[name].default.arg
                for name in (
                    *("storm_tickets", "storm_minutes", "time_zone", "auto_close_days"),
                    "staff_display_name",
                )
            },
            holidays=[],
        )
    return found


@bp.get("")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.response(200, SettingsOut)
@bp.errors(403)
def get_settings(_scope):
    """The ISP's settings."""
    scope = current_scope()
    scope.require_admin()
    return settings_of(scope.isp_id)


@bp.put("")
@token_required
@bp.arguments(ticket_scope_args, location="query")
@bp.arguments(settings_in)
@bp.response(200, SettingsOut, message="Settings updated successfully")
@bp.errors(403)
def update_settings(_scope, data):
    """Change the ISP's settings; those left out stay as they are."""
    scope = current_scope()
    scope.require_admin()
    settings = db.session.scalar(
        select(IspSettings).where(IspSettings.isp_id == scope.isp_id).with_for_update()
    )
    if settings is None:
        settings = settings_of(scope.isp_id)
        db.session.add(settings)
    values = without_scope(data)
    if "holidays" in values:
        values["holidays"] = sorted(day.isoformat() for day in values["holidays"])
    for name, value in values.items():
        setattr(settings, name, value)
    db.session.commit()
    return settings
