"""Run the research notebooks with papermill into offline HTML reports and an index."""
