"""REALIZE work chains: one episode (a step per workfunction node) and, later, training in cycles."""
