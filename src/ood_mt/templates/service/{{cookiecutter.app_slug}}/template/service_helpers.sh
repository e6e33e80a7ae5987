{% include "partials/service_helpers.sh" %}
{% include "partials/mt_gate.sh" %}