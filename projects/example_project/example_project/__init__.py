from .product_fusion import ProductFusion

__all__ = ['ProductFusion']
