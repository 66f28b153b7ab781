"""jobcenter"""
