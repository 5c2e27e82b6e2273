"""Fake DFC translator exceptions (tests only), with the real names and attributes."""


class ModelTranslatorError(Exception):
    pass


class ParsingWithRecommendationException(ModelTranslatorError):
    def __init__(self, message, recommended_start_node_names=None, recommended_end_node_names=None):
        super().__init__(message)
        self.recommended_start_node_names = recommended_start_node_names or []
        self.recommended_end_node_names = recommended_end_node_names or []


class MisspellNodeError(ModelTranslatorError):
    pass


class UnsupportedModelError(ModelTranslatorError):
    pass
