"""studio/ui"""
