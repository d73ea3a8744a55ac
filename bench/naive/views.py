from rest_framework import routers, serializers, viewsets

from .models import Item


class ItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        fields = "__all__"
        read_only_fields = ("state", "assignee", "created_at", "updated_at", "version")


class ItemViewSet(viewsets.ModelViewSet):
    queryset = Item.objects.order_by("-created_at", "-id")
    serializer_class = ItemSerializer


router = routers.SimpleRouter(trailing_slash=False)
router.register("items", ItemViewSet)
