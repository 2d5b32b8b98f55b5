// The liaison form's map pick: tap the map to fill latitude and longitude. The form
// works without this script (type coordinates or an address); nothing else is sent.
(function () {
  "use strict";
  var el = document.getElementById("map");
  if (!el || !window.L) { return; }
  var lat = document.getElementById("lat"), lon = document.getElementById("long");
  var start = [parseFloat(lat.value) || parseFloat(el.dataset.lat),
               parseFloat(lon.value) || parseFloat(el.dataset.lon)];
  var map = L.map(el).setView(start, 15);
  L.tileLayer("https://tile.openstreetmap.org/{z}/{x}/{y}.png",
              {maxZoom: 19, attribution: "&copy; OpenStreetMap contributors"}).addTo(map);
  var marker = null;
  function place(latlng) {
    if (marker) { marker.setLatLng(latlng); } else { marker = L.marker(latlng).addTo(map); }
    lat.value = latlng.lat.toFixed(6);
    lon.value = latlng.lng.toFixed(6);
  }
  if (parseFloat(lat.value) && parseFloat(lon.value)) { place(L.latLng(start)); }
  map.on("click", function (e) { place(e.latlng); });
  window.liaisonMap = map;
}());
