{% include "partials/mt_codec.sh" %}
{% include "partials/mt_publish.sh" %}