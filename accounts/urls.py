"""Login, logout and the audit log (HTML)."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("login", views.login_view, name="login"),
    path("logout", views.logout_view, name="logout"),
    path("audit", views.audit_log, name="audit_log"),
]
