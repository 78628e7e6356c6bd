"""Whole-model transforms on the Keras side.

`freezing.freeze`: generated layers -> stored 1x1 convolutions (the frozen
model); `hyperizing.hyperize`: stored 1x1 convolutions -> generated layers;
`accounting.byte_table`: packed bytes by role against the stored twin.
"""
