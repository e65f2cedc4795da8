"""Record pages (owned by urls_pages) and the CT viewer endpoints (owned by urls_viewer)."""

from webapp.records.urls_pages import urlpatterns as page_patterns
from webapp.records.urls_viewer import urlpatterns as viewer_patterns

app_name = "records"
urlpatterns = page_patterns + viewer_patterns
