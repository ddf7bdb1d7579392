// whatsapp-api dashboard behaviour: small enhancements. Every page works
// without them; the CSP allows this file and nothing inline.
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

  // The inbox's filters unfold by themselves on a wide screen.
  var filters = document.getElementById('filters');
  if (filters && window.matchMedia('(min-width: 48rem)').matches) {
    filters.open = true;
  }

  // Times are sent in UTC; show them in this browser's time zone (today's
  // as the time of day), keeping the UTC text as the title.
  var two = function (n) { return (n < 10 ? '0' : '') + n; };
  var day = function (d) {
    return d.getFullYear() + '-' + two(d.getMonth() + 1) + '-' + two(d.getDate());
  };
  var today = day(new Date());
  document.querySelectorAll('time[datetime]').forEach(function (t) {
    var d = new Date(t.getAttribute('datetime'));
    if (isNaN(d.getTime())) {
      return;
    }
    var clock = two(d.getHours()) + ':' + two(d.getMinutes());
    t.title = t.textContent;
    t.textContent = day(d) === today ? clock : day(d) + ' ' + clock;
  });

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
