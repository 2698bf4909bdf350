"""``/``: a page for a person, with no patient data and no token needed."""

from __future__ import annotations


def test_home_page_lists_the_services_with_public_links(client):
    response = client.get("/", base_url="https://attacker.example")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")
    page = response.get_data(as_text=True)
    for path in ("/fhir/metadata", "/.well-known/smart-configuration", "/cds-services",
                 "/dicomweb/studies"):
        assert f'href="http://localhost{path}"' in page
    assert "attacker.example" not in page
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/static/home.css").status_code == 200
