"""Validate cookiecutter answers before anything is written.

Runs for plain `cookiecutter cookiecutter-mt-app` and for `ood-mt new-app`/`ood-mt build`,
using the kit's own validators so the messages are the same everywhere.
"""

import json
import sys
from pathlib import Path

# Rendered by cookiecutter before this hook runs.
TEMPLATE_DIR = Path(r"""{{ cookiecutter._template }}""")
ANSWERS = json.loads(r'''{{ cookiecutter | tojson }}''')

try:
    from ood_mt.config import validate_app_answers
except ImportError:  # running from a checkout without `pip install -e .`
    # This template is src/ood_mt/templates/service (cookiecutter-mt-app links to it).
    sys.path.insert(0, str(TEMPLATE_DIR.resolve().parents[2]))
    from ood_mt.config import validate_app_answers

# service_kind needs no check here: cookiecutter itself refuses a kind that is not among this
# template's choices (its cookiecutter.json, the one list of kinds).
problems = validate_app_answers(ANSWERS, kinds=None)
if problems:
    for line in problems:
        print(line, file=sys.stderr)
    sys.exit(1)
