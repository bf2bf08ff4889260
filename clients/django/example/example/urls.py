from django.contrib import admin
from django.urls import include, path

from demo import views

urlpatterns = [
    path("", views.page, name="page"),
    path("send/", views.send, name="send"),
    path("wave/", views.wave, name="wave"),
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("herald/", include("herald_django.urls")),
    path("admin/", admin.site.urls),
]
