"""studio/generation"""
