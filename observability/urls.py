from django.urls import path

from observability.views import metrics_page

urlpatterns = [path("metrics", metrics_page, name="metrics")]
