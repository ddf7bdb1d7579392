// whatsapp-api dashboard behaviour: three small enhancements. Every page
// works without them; the CSP allows this file and nothing inline.
(function () {
  'use strict';

  // Inbox: "Select all" ticks every message checkbox on the page.
  var all = document.getElementById('select-all');
  if (all) {
    all.parentNode.hidden = false;
    all.addEventListener('change', function () {
      document.querySelectorAll('input[name="id"][type="checkbox"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  // Destructive buttons ask first.
  document.querySelectorAll('[data-confirm]').forEach(function (el) {
    el.addEventListener('click', function (event) {
      if (!window.confirm(el.getAttribute('data-confirm'))) {
        event.preventDefault();
      }
    });
  });

  // Pairing: the QR code rotates, so the image is fetched again every few
  // seconds. Only the image changes; the page is never reloaded.
  var qr = document.getElementById('qr');
  if (qr) {
    var src = qr.getAttribute('data-src');
    window.setInterval(function () {
      qr.src = src + '?t=' + Date.now();
    }, 3000);
  }
})();
