"""studio/ui/pages"""
