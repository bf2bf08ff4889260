"""A URLconf that forgot `include("herald_django.urls")` (for the system check's test)."""

urlpatterns = []
