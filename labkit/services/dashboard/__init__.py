"""The dashboard's static page (index.html, dashboard.js, dashboard.css), served by
`labkit.services.admin`: no build step, no external assets (a bench may have no Internet)."""
