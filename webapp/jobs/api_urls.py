from rest_framework.routers import SimpleRouter

from webapp.jobs.api import JobViewSet

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="api-job")

urlpatterns = router.urls
