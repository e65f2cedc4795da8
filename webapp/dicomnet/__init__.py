"""The DICOM network node: Storage/Verification SCP (``dicom_listener``), PACS query/retrieve
and sending results back. See docs/CONVENTIONS.md, command-line contract."""
