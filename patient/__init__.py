"""Patient report links (issue 13): what a patient sees of a signed report."""
