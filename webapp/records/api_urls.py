"""REST routes for records: /api/patients/, /api/studies/, /api/xrays/."""

from rest_framework.routers import SimpleRouter

from webapp.records.api import CTStudyViewSet, PatientViewSet, XrayImageViewSet

router = SimpleRouter()
router.register("patients", PatientViewSet, basename="patient")
router.register("studies", CTStudyViewSet, basename="ctstudy")
router.register("xrays", XrayImageViewSet, basename="xrayimage")

urlpatterns = router.urls
