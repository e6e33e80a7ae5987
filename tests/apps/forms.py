"""Form contexts (what a submitted OOD form holds) for the built-in apps."""

from __future__ import annotations

from typing import Any

COMMON = {"bc_num_hours": "1", "mt_cores": "1", "mt_memory_gb": "1", "bc_account": "", "bc_queue": ""}
SHARING = {"mt_share_audience": "group", "mt_share_group": "mtclass", "mt_share_users": "",
           "mt_share_mode": "form", "mt_share_until": ""}

SERVICE_FORMS: dict[str, dict[str, Any]] = {
    "llm": {"mt_model": "llama3.2:1b", "mt_model_source": "scratch", "mt_model_path": "",
            "mt_keep_alive": "30m", "mt_share_preset": "api"},
    "database": {"mt_engine": "postgresql:15", "mt_db_instance": "main", "mt_db_name": "shared",
                 "mt_db_user": "guest", "mt_share_preset": "connection"},
    "dashboard": {"mt_dashboard_type": "command", "mt_app_dir": "",
                  "mt_command": "python3 -m http.server \"$port\" --bind 0.0.0.0", "mt_share_preset": "weblink"},
    "instruction": {"mt_file_path": "/tmp/none.md", "mt_share_preset": "document"},
}
CLIENT_FORMS: dict[str, dict[str, Any]] = {
    "jupyter": {"mt_llm_share": "", "mt_database_share": ""},
    "gradio": {"mt_llm_share": ""},
    "cloudbeaver": {"mt_database_share": ""},
    "codeserver": {"mt_llm_share": ""},
}
# Free-text fields per service: these reach the job from anything the user types.
TEXT_FIELDS = {
    "llm": ["mt_model", "mt_model_path"],
    "database": ["mt_db_instance", "mt_db_name", "mt_db_user"],
    "dashboard": ["mt_app_dir", "mt_command"],
    "instruction": ["mt_file_path"],
}


def service_form(kind: str, **overrides: Any) -> dict[str, Any]:
    return {**COMMON, **SHARING, **SERVICE_FORMS[kind], **overrides}


def client_form(kind: str, **overrides: Any) -> dict[str, Any]:
    return {**COMMON, **CLIENT_FORMS[kind], **overrides}
