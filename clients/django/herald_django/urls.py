"""`path("herald/", include("herald_django.urls"))` serves the token view at `herald/token/`,
herald's service worker at `herald/sw.js` and the bundled herald.js at `herald/herald.js`."""

from django.urls import path

from . import views

app_name = "herald"

urlpatterns = [
    path("token/", views.token, name="token"),
    path("sw.js", views.service_worker, name="service_worker"),
    path("herald.js", views.script, name="script"),
]
