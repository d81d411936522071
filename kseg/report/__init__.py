"""What kseg reports, in one place:

- ``run_page``: ``runs/NAME/report.html``, a self-contained page about a run (``kseg report``);
- ``figures``: matplotlib figures (curves, confusion matrices, image | truth | prediction);
- ``tables``: text tables of an export's verification, and measured tables written into markdown.
"""
