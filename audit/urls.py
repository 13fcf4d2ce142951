from django.urls import path

from audit import api

# "stream" comes before audit/<event_id> so it is never read as an id.
urlpatterns = [
    path("audit", api.AuditCollection.as_view(), name="audit"),
    path("audit/stream", api.AuditStream.as_view(), name="audit-stream"),
    path("audit/<str:event_id>", api.AuditDetail.as_view(), name="audit-detail"),
]
