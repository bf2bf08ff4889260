"""`path("herald/", include("herald_django.urls"))` serves the token view at `herald/token/`."""

from django.urls import path

from . import views

app_name = "herald"

urlpatterns = [
    path("token/", views.token, name="token"),
]
