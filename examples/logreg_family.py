"""A model family in one module: logistic regression on pixel vectors (--model logreg)."""

from sklearn.linear_model import LogisticRegression

from mangograde.features.pixels import PixelVectors
from mangograde.models import ModelFamily, register_model, signature_defaults
from mangograde.models.classical import PhotoClassifier


def build(settings):
    pixels = PixelVectors(size=settings["features"]["size"])
    logistic = LogisticRegression(**settings["params"], random_state=settings["seed"])
    return PhotoClassifier(pixels, logistic)


register_model(
    ModelFamily(
        name="logreg",
        build=build,
        params=lambda: signature_defaults(LogisticRegression, only=("C", "max_iter")),
        features={"size": 32},
        description="Logistic regression on 32 x 32 pixel vectors.",
    )
)
