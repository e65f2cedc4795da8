"""REST routes: /api/registrations/ and /api/registration-models/."""

from rest_framework.routers import SimpleRouter

from webapp.xray_registration.api import RegistrationModelViewSet, RegistrationViewSet

router = SimpleRouter()
router.register("registrations", RegistrationViewSet, basename="registration")
router.register("registration-models", RegistrationModelViewSet, basename="registrationmodel")

urlpatterns = router.urls
