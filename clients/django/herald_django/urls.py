"""`path("herald/", include("herald_django.urls"))` serves the token view at `herald/token/` and
herald's service worker at `herald/sw.js`."""

from django.urls import path

from . import views

app_name = "herald"

urlpatterns = [
    path("token/", views.token, name="token"),
    path("sw.js", views.service_worker, name="service_worker"),
]
